"""The async supervisor: runs a launch plan's containers and guarantees cleanup."""
