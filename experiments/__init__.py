"""The experiment harness (grid expansion, executors, result store) and its TOML configs."""
