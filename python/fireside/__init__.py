"""fireside: run open large language models locally."""
