"""Pure-array numerics: statistics, z-point samplers and hit counting (no I/O, no config)."""
