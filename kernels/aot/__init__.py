"""The kernels ahead of time: for a launcher without Python (a TensorRT AOT plugin, C++).

specs.py describes each kernel's launch (arguments, constexprs, grid), cuda_targets.py names the GPUs and PTX
versions it can be built for, compiler.py turns the specs into PTX and cubins, bundle.py writes them out with a
manifest. Nothing is imported here, so describing a kernel never pulls in the compiler.
"""
