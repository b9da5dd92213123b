"""Hook-site vocabulary, shared by every backend.

A site names one point of the residual stream with TransformerLens's names::

    blocks.{L}.hook_resid_pre    # (B, T, d) input of block L
    blocks.{L}.hook_resid_mid    # (B, T, d) after attention, before the MLP
    blocks.{L}.hook_resid_post   # (B, T, d) output of block L
    blocks.{L}.hook_attn_out     # (B, T, d) what attention adds to the residual
    blocks.{L}.hook_mlp_out      # (B, T, d) what the MLP adds to the residual

``L`` may be negative (``-1`` is the last block); :func:`resolve_site` turns it into a canonical
non-negative name once the layer count is known.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import SiteError

__all__ = ["SITE_KINDS", "Site", "parse_site", "resolve_site", "resolve_sites"]

SITE_KINDS: tuple[str, ...] = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
_PATTERN = re.compile(r"^blocks\.(-?\d+)\.hook_([a-z_]+)$")
# Order in which sites of one block run in the forward pass.
_ORDER = {"resid_pre": 0, "attn_out": 1, "resid_mid": 2, "mlp_out": 3, "resid_post": 4}


@dataclass(frozen=True, order=True)
class Site:
    """One hook site: a block index and a kind (``resid_post``, ...)."""

    layer: int
    kind: str

    @property
    def name(self) -> str:
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def order(self) -> tuple[int, int]:
        """Sort key in forward-pass execution order."""
        return (self.layer, _ORDER[self.kind])

    def __str__(self) -> str:
        return self.name


def parse_site(site: str | Site) -> Site:
    """Parse ``"blocks.12.hook_resid_post"`` into a :class:`Site` (the layer may be negative).

    Example:
        >>> parse_site("blocks.-1.hook_resid_post")
        Site(layer=-1, kind='resid_post')
    """
    if isinstance(site, Site):
        return site
    if not isinstance(site, str):
        raise SiteError(
            f"a hook site must be a str like 'blocks.3.hook_resid_post', got {type(site).__name__}"
        )
    match = _PATTERN.match(site.strip())
    if match is None:
        raise SiteError(
            f"unknown hook site {site!r}: expected 'blocks.{{L}}.hook_{{kind}}' with kind one of {', '.join(SITE_KINDS)}"
        )
    layer, kind = int(match.group(1)), match.group(2)
    if kind not in SITE_KINDS:
        raise SiteError(
            f"unknown hook kind {kind!r} in {site!r}: use one of {', '.join(SITE_KINDS)}"
        )
    return Site(layer, kind)


def resolve_site(site: str | Site, n_layers: int) -> Site:
    """Parse and validate a site for a model with ``n_layers`` blocks; negative layers count from the end."""
    parsed = parse_site(site)
    layer = parsed.layer + n_layers if parsed.layer < 0 else parsed.layer
    if not 0 <= layer < n_layers:
        raise SiteError(
            f"layer {parsed.layer} in {parsed.name!r} is out of range for a model with {n_layers} layers: "
            f"use 0..{n_layers - 1} or -{n_layers}..-1"
        )
    return Site(layer, parsed.kind)


def resolve_sites(sites: str | Site | Sequence[str | Site], n_layers: int) -> list[Site]:
    """Resolve one or many sites; ``"resid_post"`` alone (a bare kind) means that kind at every layer."""
    if isinstance(sites, (str, Site)):
        sites = [sites]
    out: list[Site] = []
    for site in sites:
        if isinstance(site, str) and site in SITE_KINDS:
            out.extend(Site(layer, site) for layer in range(n_layers))
        else:
            out.append(resolve_site(site, n_layers))
    if not out:
        raise SiteError(
            "no hook sites given: pass e.g. 'blocks.10.hook_resid_post' or 'resid_post' for all layers"
        )
    if len(set(out)) != len(out):
        raise SiteError(f"duplicate hook sites in {[s.name for s in out]}: list each site once")
    return out
