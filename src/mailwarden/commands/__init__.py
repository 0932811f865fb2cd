"""One module per top-level command; each exposes ``register(app)``. cli.py only wires them."""
