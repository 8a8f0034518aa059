"""Trace each distinct block of a model's block stack once and repeat it in the ONNX graph, weights renamed.

Why: torch.onnx.export's cost grows with the graph: torch.export tracing, the decompositions and above all the
onnxscript optimizer (its pattern rewriter is super-linear in the node count: 250 of 340 profiled seconds of a
12-block ViT-tiny export), although the blocks of a ViT or an encoder are N copies of one program with different
weights. Tracing one copy of each distinct program and cloning its optimised nodes in the graph makes the export
cost nearly independent of the depth.

How (all in `traced_with_repeated_blocks`):
1. The stack (`model.blocks`, an nn.ModuleList of blocks called in order, each mapping the hidden state to one of
   the same shape; other arguments such as an attention mask pass unchanged) is cut to one representative per
   distinct program (`program_key`: the same module types, attributes and parameter shapes give the same trace).
2. Each representative's hidden-state input and output pass through a boundary node (domain BOUNDARY_DOMAIN) while
   tracing, so the graph shows exactly where a block starts and ends; the optimizer cannot see through them.
3. Parameters are graph inputs while the optimizer runs: it can neither fold them (a Linear's transposed weight
   would lose its name) nor merge equal ones (the zero biases of a fresh model), so every block node refers to its
   block's weights by name.
4. The block's nodes (between the boundaries, depending on the block's input or weights) are cloned once per block
   of the full stack, fed by the previous block's output and by that block's own weights. Nodes that depend on
   neither (shape arithmetic on the graph inputs, constant masks) are shared, as the optimizer's common
   subexpression elimination makes them in a full trace.
5. Parameters become initializers again and the nodes that only transform weights (the Transpose of a Linear
   weight) are folded, as the optimizer folds them in a full trace.
A model without a stack is traced whole through the same steps.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain

import onnx_ir as ir
import torch
from torch import nn

STACK = "blocks"
BOUNDARY_DOMAIN = "lion_export_boundary"
_BLOCK_INPUT = "BlockInput"
_BLOCK_OUTPUT = "BlockOutput"


class BlockStackError(RuntimeError):
    """The traced graph does not show the block stack as a chain of blocks (a model this module cannot serve)."""


def block_stack(model: nn.Module) -> nn.ModuleList | None:
    """The model's stack of blocks, or None if it has none."""
    stack = getattr(model, STACK, None)
    return stack if isinstance(stack, nn.ModuleList) and len(stack) > 0 else None


def _describe(value: object) -> object:
    """A comparable stand-in for a module attribute or buffer: tensors by shape, dtype and content (a repr would
    abbreviate large ones), everything else by repr."""
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        return "tensor", tuple(value.shape), str(value.dtype), hashlib.sha256(data).hexdigest()
    return repr(value)


def program_key(block: nn.Module) -> tuple:
    """Equal for two blocks whose traces are the same program: same module tree, types, plain attributes (form,
    chunk size, variant, ...), parameter names, shapes and dtypes, and buffers (by value too: a trace may bake a
    buffer in as a constant); only the parameters' values may differ."""
    modules = tuple((name, type(module).__qualname__,
                     tuple(sorted((key, _describe(value)) for key, value in vars(module).items()
                                  if not key.startswith("_"))))
                    for name, module in block.named_modules())
    parameters = tuple((name, tuple(t.shape), t.dtype) for name, t in block.named_parameters())
    buffers = tuple((name, _describe(t)) for name, t in block.named_buffers())
    return modules, parameters, buffers


@dataclass(frozen=True)
class StackPlan:
    """representatives: the stack index of the first block of each distinct program, in order;
    program_of: for every block of the stack, the index (into representatives) of its program."""

    representatives: tuple[int, ...]
    program_of: tuple[int, ...]


def plan_stack(stack: nn.ModuleList) -> StackPlan:
    keys: dict[tuple, int] = {}
    representatives: list[int] = []
    program_of = []
    for index, block in enumerate(stack):
        key = program_key(block)
        if key not in keys:
            keys[key] = len(representatives)
            representatives.append(index)
        program_of.append(keys[key])
    return StackPlan(tuple(representatives), tuple(program_of))


def _boundary(kind: str, index: int, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise BlockStackError(f"block {index} of model.{STACK} takes or returns {type(x).__name__}, not one tensor "
                              "(the hidden state)")
    return torch.onnx.ops.symbolic(f"{BOUNDARY_DOMAIN}::{kind}", (x,), {"index": index}, dtype=x.dtype,
                                   shape=x.shape, version=1)


def _mark_input(index: int, _module: nn.Module, args: tuple) -> tuple:
    if not args:
        raise BlockStackError(f"block {index} of model.{STACK} was called without a positional hidden state")
    return (_boundary(_BLOCK_INPUT, index, args[0]), *args[1:])


def _mark_output(index: int, _module: nn.Module, _args: tuple, output: object) -> torch.Tensor:
    return _boundary(_BLOCK_OUTPUT, index, output)


@contextmanager
def reduced_model(model: nn.Module, plan: StackPlan) -> Iterator[nn.Module]:
    """`model` itself (modified in place until the block exits: pass a private copy) with its stack cut to the
    representatives, each representative's input and output marked by boundary nodes when traced."""
    stack = model._modules[STACK]
    representatives = nn.ModuleList(stack[i] for i in plan.representatives)
    handles = []
    for index, block in enumerate(representatives):
        handles.append(block.register_forward_pre_hook(partial(_mark_input, index)))
        handles.append(block.register_forward_hook(partial(_mark_output, index)))
    model._modules[STACK] = representatives
    try:
        yield model
    finally:
        model._modules[STACK] = stack
        for handle in handles:
            handle.remove()


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(chain(model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)))


def _weights_to_inputs(graph: ir.Graph, names: set[str]) -> dict[str, ir.Value]:
    """Turn the initializers named after model tensors into graph inputs (step 3); returns them by name."""
    moved = {}
    for name in [n for n in graph.initializers if n in names]:
        value = graph.initializers.pop(name)
        value.const_value = None
        graph.inputs.append(value)
        moved[name] = value
    return moved


def _depends_on(sources: list[ir.Value]) -> set[ir.Node]:
    """Every node that (transitively) consumes one of `sources`."""
    found: set[ir.Node] = set()
    pending = list(sources)
    while pending:
        for user, _ in pending.pop().uses():
            if user not in found:
                found.add(user)
                pending.extend(user.outputs)
    return found


def _ancestors(value: ir.Value, stop: ir.Node) -> set[ir.Node]:
    """Every node `value` is computed from, up to (not including) `stop`."""
    found: set[ir.Node] = set()
    pending = [value.producer()]
    while pending:
        node = pending.pop()
        if node is None or node is stop or node in found:
            continue
        found.add(node)
        pending.extend(v.producer() for v in node.inputs if v is not None)
    return found


@dataclass
class _Block:
    """One traced representative in the graph: its boundary nodes, the nodes to clone (in graph order) and the
    graph inputs holding its weights (by name relative to the block)."""

    start: ir.Node
    end: ir.Node
    nodes: list[ir.Node]
    weights: dict[str, ir.Value]


def _find_blocks(graph: ir.Graph, count: int, weights: Mapping[str, ir.Value]) -> list[_Block]:
    boundaries: dict[tuple[str, int], ir.Node] = {}
    for node in graph:
        if node.domain == BOUNDARY_DOMAIN:
            key = (node.op_type, node.attributes["index"].as_int())
            if key in boundaries:
                raise BlockStackError(f"block {key[1]} of model.{STACK} ran more than once in one forward pass")
            boundaries[key] = node
    if set(boundaries) != {(kind, i) for kind in (_BLOCK_INPUT, _BLOCK_OUTPUT) for i in range(count)}:
        raise BlockStackError(f"the trace does not show each of the {count} traced blocks of model.{STACK} once")
    order = {node: position for position, node in enumerate(graph)}
    blocks = []
    for index in range(count):
        start, end = boundaries[_BLOCK_INPUT, index], boundaries[_BLOCK_OUTPUT, index]
        if index and start.inputs[0] is not blocks[-1].end.outputs[0]:
            raise BlockStackError(f"block {index} of model.{STACK} does not take the previous block's output")
        prefix = f"{STACK}.{index}."
        own = {name.removeprefix(prefix): value for name, value in weights.items() if name.startswith(prefix)}
        members = _depends_on([start.outputs[0], *own.values()]) & _ancestors(end.inputs[0], start)
        for node in members:
            if any(attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for attr in node.attributes.values()):
                raise BlockStackError(f"block {index} of model.{STACK} has control flow ({node.op_type}); its "
                                      "nodes cannot be repeated")
        for output in chain(start.outputs, *(node.outputs for node in members)):
            if any(user not in members and user is not end for user, _ in output.uses()):
                raise BlockStackError(f"a value inside block {index} of model.{STACK} is used outside it")
        blocks.append(_Block(start, end, sorted(members, key=order.__getitem__), own))
    return blocks


def _clone_block(block: _Block, hidden: ir.Value, weights: Mapping[str, ir.Value], index: int,
                 representative: int) -> tuple[list[ir.Node], ir.Value]:
    """Copies of the block's nodes reading `hidden` and `weights`; returns them and the copy's output."""
    mapping: dict[ir.Value, ir.Value] = {block.start.outputs[0]: hidden}
    mapping.update((value, weights[name]) for name, value in block.weights.items())
    scope = re.compile(rf"\b{STACK}\.{representative}\b")
    prefix = f"{STACK}.{index}."
    clones = []
    for node in block.nodes:
        clone = ir.Node(node.domain, node.op_type, [None if v is None else mapping.get(v, v) for v in node.inputs],
                        [ir.Attr(a.name, a.type, a.value, doc_string=a.doc_string) for a in node.attributes.values()],
                        overload=node.overload, num_outputs=len(node.outputs), version=node.version,
                        name=prefix + (node.name or node.op_type), doc_string=node.doc_string,
                        metadata_props={key: scope.sub(f"{STACK}.{index}", text)
                                        for key, text in node.metadata_props.items()})
        for old, new in zip(node.outputs, clone.outputs):
            new.name = prefix + old.name
            new.type = old.type
            new.shape = old.shape.copy() if old.shape is not None else None
            mapping[old] = new
        clones.append(clone)
    return clones, mapping[block.end.inputs[0]]


def _repeat(graph: ir.Graph, plan: StackPlan, weights: dict[str, ir.Value]) -> None:
    """Step 4: replace the traced representatives by one copy per block of the stack; `weights` (the graph inputs
    holding weights) gets the copies' weight inputs in place of the representatives'."""
    blocks = _find_blocks(graph, len(plan.representatives), weights)
    hidden = blocks[0].start.inputs[0]
    result = blocks[-1].end.outputs[0]
    for name in [n for n in weights if n.startswith(f"{STACK}.")]:
        graph.inputs.remove(weights.pop(name))
    new_nodes = []
    for index, program in enumerate(plan.program_of):
        block = blocks[program]
        own = {}
        for name, template in block.weights.items():
            full_name = f"{STACK}.{index}.{name}"
            value = ir.Value(name=full_name, type=template.type, shape=template.shape.copy())
            weights[full_name] = value
            graph.inputs.append(value)
            own[name] = value
        clones, hidden = _clone_block(block, hidden, own, index, program)
        new_nodes.extend(clones)
    if result in graph.outputs:
        output_name = result.name
        result.name = f"{output_name}.traced"
        hidden.name = output_name
    result.replace_all_uses_with(hidden, replace_graph_outputs=True)
    graph.remove([node for block in blocks for node in (block.start, *block.nodes, block.end)], safe=True)
    graph.extend(new_nodes)
    graph.sort()
    graph.opset_imports.pop(BOUNDARY_DOMAIN, None)


def _weights_to_initializers(graph: ir.Graph, weights: Mapping[str, ir.Value],
                             tensors: Mapping[str, torch.Tensor]) -> None:
    """Step 5, first half: the weight inputs become initializers holding the full model's tensors."""
    for name, value in weights.items():
        graph.inputs.remove(value)
        value.const_value = ir.tensor_adapters.TorchTensor(tensors[name], name=name)
        graph.register_initializer(value)


def _name_weight_transposes(graph: ir.Graph, weights: Mapping[str, ir.Value]) -> None:
    """Name the Transpose of each weight after it (`blocks.0.attn.qkv.weight.T`), a name the folded constant keeps:
    the file then says which parameter each MatMul reads, as its Gemm and Conv nodes say by reading the weight
    itself. The INT8 reference of verify (verify/fake_quant.py) places each quantized weight on its module so."""
    taken = {value.name for node in graph for value in node.outputs} | set(graph.initializers)
    for name, weight in weights.items():
        for user, _ in weight.uses():
            target = f"{name}.T"
            if user.op_type == "Transpose" and user.domain == "" and len(user.inputs) == 1 and target not in taken:
                user.outputs[0].name = target
                taken.add(target)


def _fold_weight_transforms(model: ir.Model) -> None:
    """Step 5, second half: fold nodes whose inputs are all constants (a Linear weight's Transpose, ...), drop
    what they leave unused and store folded constants as initializers, as torch.onnx's optimizer ends."""
    import onnx_ir.passes.common as common_passes
    from onnxscript.optimizer import fold_constants

    fold_constants(model, onnx_shape_inference=False)
    ir.passes.Sequential(common_passes.RemoveUnusedNodesPass(),
                         common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
                         common_passes.DeduplicateInitializersPass())(model)


def traced_with_repeated_blocks(model: nn.Module, trace: Callable[[nn.Module], "torch.onnx.ONNXProgram"],
                                progress: Callable[[str], None]) -> "torch.onnx.ONNXProgram":
    """`trace(m)` (torch.onnx.export without its optimizer) on `model` reduced to its distinct blocks, optimised,
    then expanded back to every block (module docstring). `model` must be a private copy (modified while tracing).
    progress: called with a short description at the start of each phase."""
    stack = block_stack(model)
    plan = plan_stack(stack) if stack is not None else None
    tensors = _named_tensors(model)
    if plan is None:
        progress("tracing with torch.onnx")
        program = trace(model)
        traced_names = set(tensors)
    else:
        distinct = len(plan.representatives)
        progress(f"tracing with torch.onnx ({distinct} distinct of {len(stack)} blocks)")
        with reduced_model(model, plan) as reduced:
            program = trace(reduced)
            traced_names = set(_named_tensors(reduced))
    graph = program.model.graph
    weights = _weights_to_inputs(graph, traced_names)
    progress("optimizing the graph" if plan is None else f"optimizing the graph, repeating it for {len(stack)} blocks")
    program.optimize()
    if plan is not None:
        _repeat(graph, plan, weights)
    _weights_to_initializers(graph, weights, tensors)
    _name_weight_transposes(graph, weights)
    _fold_weight_transforms(program.model)
    return program


__all__ = ["STACK", "BOUNDARY_DOMAIN", "BlockStackError", "StackPlan", "block_stack", "program_key", "plan_stack",
           "reduced_model", "traced_with_repeated_blocks"]
