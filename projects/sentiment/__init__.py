"""Sentiment analysis with Hugging Face `datasets` and `tokenizers`, models trained from scratch."""
