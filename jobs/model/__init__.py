"""The model: resolving a reference to one registry version, shipping it to executors, and the training side of train/serve parity."""
