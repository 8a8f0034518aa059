"""The AOT `lion::SelectiveScan` plugin (standard TensorRT >= 10.9, tensorrt.plugin): the kernel choice, compile
target and launch rule its aot_impl returns, checked here as plain functions against the compiled PTX; the
registration and engine build themselves need standard TensorRT (not installable on CI) and skip without it."""
from __future__ import annotations

import dataclasses
import importlib.util
import shutil

import numpy as np
import pytest

from lion_export import plugins
from lion_export.kernels.aot.specs import ProblemShape
from lion_export.kernels.scan import scratch_shapes
from lion_export.plugins import selective_scan_aot as aot


def _standard_tensorrt():
    """The standard `tensorrt` module when it is importable and new enough, else None."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt
    except ImportError:          # the bindings without the libraries
        return None
    return tensorrt if aot.aot_unavailable_reason(tensorrt) is None else None


def test_compile_target_follows_the_gpu():
    assert [aot.aot_target(c) for c in (80, 86, 87, 89, 90)] == ["sm_80", "sm_86", "sm_87", "sm_89", "sm_90"]
    # newer GPUs get the newest portable PTX (sm_90's is sm_90a, Hopper only); the driver JIT-compiles it forward
    assert aot.aot_target(100) == aot.aot_target(120) == "sm_89"
    with pytest.raises(ValueError, match="compute capability 75"):
        aot.aot_target(75)


def test_kernel_config_bakes_in_the_node_attributes():
    config = aot.kernel_config("HALF", 8, 40, False, 1e-5)
    assert (config.dtype, config.dk, config.dv, config.normalize, config.eps) == ("fp16", 8, 40, False, 1e-5)
    assert aot.kernel_config("FLOAT", 16, 16, True, 1e-6).dtype == "fp32"
    assert aot.kernel_config("BF16", 16, 16, True, 1e-6).dtype == "bf16"
    with pytest.raises(ValueError, match="INT8"):
        aot.kernel_config("INT8", 8, 8, True, 1e-6)
    with pytest.raises(ValueError, match="head_dim"):
        aot.kernel_config("HALF", 8, 200, True, 1e-6)


def test_compiled_ptx_takes_exactly_what_tensorrts_aot_path_passes():
    """TensorRT calls the entry with (input pointers, SymInt32 scalars, output pointers): 4 inputs, L, and the
    plugin's 3 declared outputs; the launch rule is (B * H, ceil(dv / 32), 1) x 128 threads."""
    config = aot.kernel_config("HALF", 8, 40, True, 1e-5)
    kernel = aot.compiled_scan(config, "sm_87")
    assert kernel.spec.name == aot.SCAN_KERNEL
    assert [a.name for a in kernel.spec.args if a.role == "output"] == list(aot.OUTPUTS)
    assert [(p.type, p.pointer) for p in kernel.ptx_params] == [(".u64", True)] * 4 + [(".u32", False)] + \
        [(".u64", True)] * 3
    assert kernel.hidden_params == ()
    assert kernel.spec.constexprs["EPS"] == 1e-5 and kernel.spec.constexprs["NORMALIZE"] is True
    launch = aot.scan_launch(kernel)
    assert launch.entry == kernel.entry and f".entry {launch.entry}(" in launch.ptx
    assert launch.grid_y == 2 == scratch_shapes(ProblemShape(1, 1, 1, 8, 40))["den_scratch"][2]
    assert launch.block_x == 128 and launch.shared_mem == kernel.shared_mem
    assert aot.compiled_scan(config, "sm_87") is kernel                      # compiled once per process


def test_tensorrt_rtx_is_refused_with_the_reason():
    import tensorrt_rtx_bindings

    reason = aot.aot_unavailable_reason(tensorrt_rtx_bindings)
    assert reason and "standard TensorRT >= 10.9" in reason
    with pytest.raises(RuntimeError, match="standard TensorRT >= 10.9"):
        plugins.register_aot(tensorrt_rtx_bindings)


@pytest.mark.skipif(_standard_tensorrt() is None, reason="needs standard TensorRT >= 10.9 (tensorrt.plugin)")
def test_register_aot_defines_the_decorator_plugin_once():
    import tensorrt
    import tensorrt.plugin as trtp

    plugins.register_aot(tensorrt)
    plugins.register_aot(tensorrt)
    creator = tensorrt.get_plugin_registry().get_creator(plugins.PLUGIN_NAME, plugins.PLUGIN_VERSION,
                                                         plugins.PLUGIN_NAMESPACE)
    assert creator is not None
    assert sorted(f.name for f in creator.field_names) == ["eps", "normalize"]
    assert hasattr(trtp.op.lion, "SelectiveScan")
    with pytest.raises(RuntimeError, match="only one"):
        plugins.register(tensorrt)


@pytest.fixture(scope="module")
def scan_bundle(tmp_path_factory):
    """A kernel bundle as `lion-export compile-kernels` writes it, holding the scan kernel for one config."""
    from lion_export.kernels.aot.bundle import write_kernel_bundle
    from lion_export.kernels.aot.compiler import compile_kernels

    config = aot.kernel_config("FLOAT", 16, 16, False, 2e-6)
    directory = tmp_path_factory.mktemp("bundle")
    kernels = compile_kernels("sm_86", config, only=(aot.SCAN_KERNEL,))
    write_kernel_bundle(directory, kernels, config)
    return directory, config, kernels[0]


def test_a_matching_bundle_gives_its_ptx_without_compiling(scan_bundle):
    directory, config, kernel = scan_bundle
    found = aot.bundled_scan(directory, config, "sm_86")
    assert found == aot.scan_launch(kernel)
    # the node's eps arrives as float32: the bundle's 2e-6 still matches
    float32_eps = aot.kernel_config("FLOAT", 16, 16, False, float(np.float32(2e-6)))
    assert aot.bundled_scan(directory, float32_eps, "sm_86") == found
    misses = aot.compiled_scan.cache_info().misses
    assert aot.scan_for(float32_eps, "sm_86", [directory]) == found
    assert aot.compiled_scan.cache_info().misses == misses


@pytest.mark.parametrize("change", [{"eps": 1e-6}, {"normalize": True}, {"head_dim_v": 32}, {"dtype": "fp16"}])
def test_a_bundle_for_another_config_or_target_is_passed_over(scan_bundle, change):
    directory, config, _ = scan_bundle
    assert aot.bundled_scan(directory, dataclasses.replace(config, **change), "sm_86") is None
    assert aot.bundled_scan(directory, config, "sm_87") is None


def test_a_damaged_bundle_is_refused(scan_bundle, tmp_path):
    directory, config, kernel = scan_bundle
    damaged = tmp_path / "damaged"
    shutil.copytree(directory, damaged)
    (damaged / f"{aot.SCAN_KERNEL}.ptx").write_text(kernel.ptx.replace(".entry", ".entry ", 1))
    with pytest.raises(ValueError, match="sha256"):
        aot.bundled_scan(damaged, config, "sm_86")
