"""GPU types, model layer profiles and network topologies (loaders; the data lives under data/)."""
