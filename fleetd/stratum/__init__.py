"""Sans-IO Stratum v1: framing, messages, the session state machine, reject reasons."""
