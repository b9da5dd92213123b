"""Hook-site vocabulary: parsing, negative layers, bare kinds, and pinned error messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oyster_steer import SiteError
from oyster_steer.core._sites import SITE_KINDS, Site, parse_site, resolve_site, resolve_sites


def test_parse_names_every_kind():
    for kind in SITE_KINDS:
        assert parse_site(f"blocks.7.hook_{kind}") == Site(7, kind)
    assert parse_site("blocks.-1.hook_resid_post") == Site(-1, "resid_post")
    assert parse_site("  blocks.2.hook_mlp_out ") == Site(2, "mlp_out")


def test_site_passes_through_and_prints_its_name():
    site = Site(3, "attn_out")
    assert parse_site(site) is site
    assert site.name == str(site) == "blocks.3.hook_attn_out"


def test_order_is_forward_pass_order():
    kinds = ["resid_post", "mlp_out", "resid_mid", "attn_out", "resid_pre"]
    ordered = sorted([Site(1, k) for k in kinds] + [Site(0, "resid_post")], key=lambda s: s.order)
    assert [s.name for s in ordered] == [
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_pre",
        "blocks.1.hook_attn_out",
        "blocks.1.hook_resid_mid",
        "blocks.1.hook_mlp_out",
        "blocks.1.hook_resid_post",
    ]


@pytest.mark.parametrize(("layer", "expected"), [(0, 0), (29, 29), (-1, 29), (-30, 0), (-12, 18)])
def test_negative_layers_count_from_the_end(layer, expected):
    assert resolve_site(f"blocks.{layer}.hook_resid_pre", 30) == Site(expected, "resid_pre")


@pytest.mark.parametrize("layer", [30, 31, -31, 1000])
def test_layer_out_of_range(layer):
    with pytest.raises(
        SiteError,
        match=rf"layer {layer} in 'blocks\.{layer}\.hook_resid_post' is out of range for a model "
        r"with 30 layers: use 0\.\.29 or -30\.\.-1",
    ):
        resolve_site(f"blocks.{layer}.hook_resid_post", 30)


@pytest.mark.parametrize(
    "bad",
    ["resid_post", "blocks.3.resid_post", "block.3.hook_resid_post", "blocks.x.hook_resid_pre", ""],
)
def test_unknown_site(bad):
    with pytest.raises(
        SiteError, match=r"unknown hook site .*expected 'blocks\.\{L\}\.hook_\{kind\}'"
    ):
        parse_site(bad)


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(
        SiteError,
        match=r"unknown hook kind 'resid_final' in 'blocks\.1\.hook_resid_final': use one of "
        r"resid_pre, resid_mid, resid_post, attn_out, mlp_out",
    ):
        parse_site("blocks.1.hook_resid_final")


@pytest.mark.parametrize("bad", [3, 2.5, None, ["blocks.0.hook_resid_post"]])
def test_wrong_type(bad):
    with pytest.raises(
        SiteError, match=r"a hook site must be a str like 'blocks\.3\.hook_resid_post', got "
    ):
        parse_site(bad)


def test_site_errors_are_value_errors():
    with pytest.raises(ValueError):
        parse_site("nope")


def test_bare_kind_means_every_layer():
    assert resolve_sites("resid_post", 3) == [
        Site(0, "resid_post"),
        Site(1, "resid_post"),
        Site(2, "resid_post"),
    ]
    mixed = resolve_sites(["mlp_out", "blocks.-1.hook_resid_pre", Site(0, "attn_out")], 2)
    assert [s.name for s in mixed] == [
        "blocks.0.hook_mlp_out",
        "blocks.1.hook_mlp_out",
        "blocks.1.hook_resid_pre",
        "blocks.0.hook_attn_out",
    ]


def test_duplicates_are_refused_after_resolution():
    with pytest.raises(SiteError, match=r"duplicate hook sites in .*: list each site once"):
        resolve_sites(["blocks.-1.hook_resid_post", "blocks.2.hook_resid_post"], 3)
    with pytest.raises(SiteError, match="duplicate hook sites"):
        resolve_sites(["resid_post", "blocks.0.hook_resid_post"], 3)


def test_no_sites():
    with pytest.raises(
        SiteError, match=r"no hook sites given: pass e\.g\. 'blocks\.10\.hook_resid_post'"
    ):
        resolve_sites([], 3)


def test_wrong_type_inside_a_list():
    with pytest.raises(SiteError, match="a hook site must be a str"):
        resolve_sites(["blocks.0.hook_resid_post", 1], 3)


sites = st.builds(Site, st.integers(-(10**6), 10**6), st.sampled_from(SITE_KINDS))


@given(sites)
def test_round_trip_site_name_site(site):
    assert parse_site(site.name) == site
    assert parse_site(str(site)).name == site.name


@given(sites, st.integers(1, 200))
def test_resolution_is_idempotent_and_in_range(site, n_layers):
    if not -n_layers <= site.layer < n_layers:
        with pytest.raises(SiteError, match="out of range"):
            resolve_site(site, n_layers)
        return
    resolved = resolve_site(site.name, n_layers)
    assert 0 <= resolved.layer < n_layers
    assert resolved.layer % n_layers == site.layer % n_layers
    assert resolve_site(resolved, n_layers) == resolved
