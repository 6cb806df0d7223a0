"""Known answers for newllm stop (issue 16)."""
