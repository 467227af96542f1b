"""stageswap streamer: the real-time service and the command line around the engines."""
