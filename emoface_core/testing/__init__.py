"""Test support for tests and benchmarks (reference network, fake clocks), never the product."""
