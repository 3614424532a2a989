"""Lip sync from a line's text: phonemes and visemes, alignment onto the recording, the lip layer."""
