"""Serving engines: how much KV cache each engine would allocate on a device, and what it holds."""
