"""Text classifiers trained from scratch: BiLSTM/GRU, Kim-style CNN, Transformer encoder, bag of n-grams.

Every network takes `(vocab_size, num_classes)` first and maps token ids `(B, T)` with an attention mask
`(B, T)` (True on real tokens, False on padding; id 0 is padding) to logits `(B, num_classes)`.
The networks built on token embeddings subclass `EmbeddingClassifier`, which splits that into `embed`
and `classify` so that training can perturb the embeddings (adversarial training, see `module.py`).
"""

import math
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from common.errors import UserInputError
from projects.sentiment.tokenizer import PAD_ID


def masked_max(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over time of `(B, T, D)`, ignoring padded steps; `(B, D)`."""
    return hidden.masked_fill(~mask[..., None], torch.finfo(hidden.dtype).min).amax(dim=1)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of `(B, T, D)`, ignoring padded steps; `(B, D)`."""
    weights = mask[..., None].to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class AttentionPooling(nn.Module):
    """Additive self-attention pooling (Lin et al., 2017, one head): a learned query scores every step."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1).masked_fill(~mask, torch.finfo(hidden.dtype).min)  # (B, T)
        return (scores.softmax(dim=1)[..., None] * hidden).sum(dim=1)  # (B, D)


class EmbeddingClassifier(nn.Module):
    """A network that looks its tokens up in `self.embedding` and classifies the embedded sequence.

    Subclasses build `self.embedding` and implement `classify`; `forward` is `classify(embed(ids))`.
    """

    embedding: nn.Embedding

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings `(B, T, E)`."""
        return self.embedding(input_ids)

    def classify(self, embedded: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits `(B, num_classes)` from token embeddings `(B, T, E)`."""
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(input_ids), attention_mask)


class RecurrentClassifier(EmbeddingClassifier):
    """Bidirectional LSTM or GRU over token embeddings, pooled by max over time or attention.

    Args:
        vocab_size: rows of the embedding table.
        num_classes: output classes.
        cell: `lstm` or `gru`.
        embedding_dim: token embedding size.
        hidden_dim: hidden size per direction.
        num_layers: stacked recurrent layers.
        pooling: `max` over time or additive `attention`.
        embedding_dropout: dropout on the embeddings (the strongest regulariser for small corpora).
        dropout: dropout before the output layer and between recurrent layers.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: Literal["lstm", "gru"] = "lstm",
        embedding_dim: int = 300,
        hidden_dim: int = 256,
        num_layers: int = 1,
        pooling: Literal["max", "attention"] = "max",
        embedding_dropout: float = 0.3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        recurrent = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = recurrent(
            embedding_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.pool = AttentionPooling(2 * hidden_dim) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_dim, num_classes)

    def classify(self, embedded: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding_dropout(embedded)  # (B, T, E)
        # Packing keeps the backward direction from starting on padding.
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = self.rnn(packed)
        # (B, T, 2H)
        hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=embedded.shape[1])
        pooled = self.pool(hidden, attention_mask) if self.pool else masked_max(hidden, attention_mask)
        return self.head(self.dropout(pooled))


class ConvolutionalClassifier(EmbeddingClassifier):
    """Kim (2014) CNN: parallel 1-D convolutions of several widths, ReLU, max over time, dropout, linear.

    Args:
        vocab_size: rows of the embedding table.
        num_classes: output classes.
        embedding_dim: token embedding size.
        kernel_sizes: widths (in tokens) of the parallel convolutions.
        num_filters: output channels of each convolution.
        embedding_dropout: dropout on the embeddings.
        dropout: dropout before the output layer.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embedding_dim: int = 300,
        kernel_sizes: tuple[int, ...] = (3, 4, 5),
        num_filters: int = 100,
        embedding_dropout: float = 0.2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        # padding = width - 1 lets a convolution see texts shorter than its width.
        self.convolutions = nn.ModuleList(
            nn.Conv1d(embedding_dim, num_filters, width, padding=width - 1) for width in kernel_sizes
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters * len(kernel_sizes), num_classes)

    def classify(self, embedded: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding_dropout(embedded)
        embedded = embedded.masked_fill(~attention_mask[..., None], 0).transpose(1, 2)  # (B, E, T)
        lengths = attention_mask.sum(dim=1, keepdim=True)  # (B, 1); texts are right-padded
        pooled = []
        for convolution in self.convolutions:
            features = torch.relu(convolution(embedded))  # (B, F, T + width - 1)
            # Windows past a text's end see only padding: their output is relu(bias), which would depend on
            # how long the other texts in the batch are. Zero them (features are >= 0) before the max.
            positions = torch.arange(features.shape[2], device=features.device)
            outside = positions >= lengths + convolution.kernel_size[0] - 1  # (B, T + width - 1)
            pooled.append(features.masked_fill(outside[:, None, :], 0).amax(dim=2))  # (B, F)
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


class TransformerClassifier(EmbeddingClassifier):
    """A small pre-norm Transformer encoder (`torch.nn`) with learned positions and masked mean pooling.

    Args:
        vocab_size: rows of the embedding table.
        num_classes: output classes.
        model_dim: width of the residual stream.
        num_heads: attention heads.
        num_layers: encoder layers.
        feedforward_dim: hidden size of each feed-forward block.
        max_length: longest sequence (positions) the model accepts; match the datamodule's `max_length`.
        dropout: dropout inside the encoder and before the output layer.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        model_dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        feedforward_dim: int = 256,
        max_length: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, model_dim, padding_idx=PAD_ID)
        self.position = nn.Embedding(max_length, model_dim)
        layer = nn.TransformerEncoderLayer(
            model_dim,
            num_heads,
            feedforward_dim,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(model_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(model_dim, num_classes)
        self.scale = math.sqrt(model_dim)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(input_ids) * self.scale

    def classify(self, embedded: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length, max_length = embedded.shape[1], self.position.num_embeddings
        if length > max_length:
            raise UserInputError(
                f"a batch has texts of {length} tokens but the Transformer has {max_length} positions: set "
                f"--model.network.init_args.max_length to at least --data.max_length"
            )
        positions = torch.arange(length, device=embedded.device)
        hidden = embedded + self.position(positions)  # (B, T, D)
        hidden = self.encoder(self.dropout(hidden), src_key_padding_mask=~attention_mask)
        return self.head(self.dropout(masked_mean(self.norm(hidden), attention_mask)))


class BagOfNgramsClassifier(nn.Module):
    """Logistic regression on hashed n-gram counts (the fastText/NBSVM-style linear baseline).

    Unigrams are the token ids themselves; longer n-grams are hashed into `num_buckets` extra features.

    Args:
        vocab_size: unigram features.
        num_classes: output classes.
        ngram_range: longest n-gram; 2 adds bigrams.
        num_buckets: hashed features shared by all n-grams longer than one token.
    """

    def __init__(
        self, vocab_size: int, num_classes: int, ngram_range: int = 2, num_buckets: int = 2**18
    ) -> None:
        super().__init__()
        self.vocab_size, self.ngram_range, self.num_buckets = vocab_size, ngram_range, num_buckets
        # An EmbeddingBag with one column per class is exactly a linear layer over bag-of-features counts.
        self.weights = nn.EmbeddingBag(vocab_size + num_buckets, num_classes, mode="mean", padding_idx=PAD_ID)
        nn.init.zeros_(self.weights.weight)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Feature ids `(B, F)` of every n-gram, PAD_ID where an n-gram touches padding."""
        features = [input_ids.masked_fill(~attention_mask, PAD_ID)]
        for n in range(2, min(self.ngram_range, input_ids.shape[1]) + 1):
            windows = input_ids.unfold(1, n, 1)  # (B, T - n + 1, n)
            valid = attention_mask.unfold(1, n, 1).all(dim=2)
            hashed = torch.zeros_like(windows[..., 0])
            for position in range(n):  # a polynomial rolling hash of the n ids
                hashed = (hashed * 1_000_003 + windows[..., position]) % self.num_buckets
            features.append((hashed + self.vocab_size).masked_fill(~valid, PAD_ID))
        return torch.cat(features, dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.weights(self.features(input_ids, attention_mask)) + self.bias
