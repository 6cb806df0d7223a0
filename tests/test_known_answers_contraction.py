"""Known answers for newllm contraction (issue 16)."""
