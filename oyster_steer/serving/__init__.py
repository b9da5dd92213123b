"""Serving engines that run what oyster_steer builds: :mod:`oyster_steer.serving.vllm` (a vLLM
plugin for probe-gated control plans). Nothing here is imported by the rest of the package.
"""
