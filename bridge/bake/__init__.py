"""Batch baking: inputs, up-to-date journal, rendering, worker runners."""
