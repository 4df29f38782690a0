"""Multi-model placement with model parallelism: cluster, configs, latency model, verify, simulator."""
