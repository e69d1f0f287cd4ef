"""Cluster conditioning, an extra of the MNIST recipe: k-means clusters of the training pixels stand in for class
labels. Both networks see the one-hot cluster of each image (a fake takes the cluster of a real image of its
batch), and sampling draws clusters as often as they hold training images."""

import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans


def kmeans(points: torch.Tensor, k: int, seed: int, sample: int = 20_000) -> torch.Tensor:
    """Centroids `(k, D)` of `points` `(N, D)`: scikit-learn's k-means (k-means++ seeding) on a seeded sample."""
    noise = torch.Generator().manual_seed(seed)
    points = points[torch.randperm(len(points), generator=noise)[:sample]]
    fitted = KMeans(n_clusters=k, n_init=4, max_iter=20, random_state=seed).fit(points.double().numpy())
    return torch.from_numpy(fitted.cluster_centers_).to(points.dtype)


def pixels_of(images: torch.Tensor) -> torch.Tensor:
    """Flat pixels `(N, C*S*S)` in [0, 1] of uint8 images or images in [-1, 1], the space the clusters live in."""
    if images.dtype == torch.uint8:
        return images.flatten(1).float() / 255
    return (images.detach().float().flatten(1) + 1) / 2


def nearest_cluster(pixels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The index of the nearest centroid of each row of `pixels`, in chunks that fit memory."""
    return torch.cat([torch.cdist(part, centroids).argmin(dim=1) for part in pixels.split(8192)])


def fit_clusters(images: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids `(k, C*S*S)` of the uint8 training images `(N, C, S, S)` and the share of images nearest each."""
    pixels = pixels_of(images)
    centroids = kmeans(pixels, k, seed=seed)
    counts = torch.bincount(nearest_cluster(pixels, centroids), minlength=k).float()
    return centroids, counts / counts.sum()


def cluster_codes(images: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """One-hot codes `(B, k)` of the nearest centroid of each image `(B, C, S, S)` in [-1, 1]."""
    return F.one_hot(nearest_cluster(pixels_of(images), centroids), len(centroids)).float()


def draw_codes(shares: torch.Tensor, count: int, noise: torch.Generator) -> torch.Tensor:
    """`count` one-hot codes `(count, k)`, each cluster drawn with probability `shares` (an empty `k` gives
    `(count, 0)`: an unconditional model)."""
    if len(shares) == 0:
        return torch.zeros(count, 0)
    ids = torch.multinomial(shares.cpu(), count, replacement=True, generator=noise)
    return F.one_hot(ids, len(shares)).float()
