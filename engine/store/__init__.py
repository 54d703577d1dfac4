"""Dataset directories: partitions, manifest, atomic writes and the stage runner."""
