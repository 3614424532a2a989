"""Frame transports: ZeroMQ, OSC and Live Link Face senders."""
