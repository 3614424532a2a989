"""Lip sync from a line's text: phonemes and visemes, alignment, the lip layer."""
