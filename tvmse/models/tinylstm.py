"""TinyLSTM: the study's base network in its streaming form.

One STFT frame in, one mask out, the LSTM state carried between calls::

    features[257] ─► LSTM(256) ─► LSTM(256) ─► FC(257) ─► sigmoid ─► mask[257]
                     (h0, c0)     (h1, c1)      state in and out of every step

With 257-bin input: LSTM0 4·256·(257+256) + 4·256 = 526 336, LSTM1 4·256·512 + 4·256 = 525 312,
FC 257·256 + 257 = 66 049 parameters; 1 117 697 in all, 4 470 788 bytes in fp32 (one bias per
gate row, as the integer form has one bias per FC output).

Each LSTM cell is written as the ops an int8 NPU runs, which is also what the QDQ export holds::

    xh      = concat(x, h)                      int8, scale 1/127 (x and h share it: int8
                                                CONCATENATION needs one quantization)
    gates   = FC(xh, W[4H, K+H], b)             int8, per-layer scale, per-channel weights
    i, f, g, o = static slices of gates          (torch/ONNX gate order i, f, g, o)
    i, f, o = sigmoid(·)                         int8, scale 1/256, zero point −128 (TFLite's fixed
    g       = tanh(·)                            int8, scale 1/128, zero point 0   LUT quantization)
    fc      = f · c                              int8, own scale
    ig      = i · g                              int8, own scale
    c'      = fc + ig                            int8, the layer's cell scale (the state input c uses
                                                it too, so the recurrence is closed)
    h'      = o · tanh(c')                       int8, scale 1/127

Why these choices: every op is an int8 FULLY_CONNECTED, MUL, ADD, LOGISTIC, TANH, slice or
concatenation, all of which Vela keeps on Ethos-U55. The cell state is int8 with a calibrated
scale (int16 would need QUANTIZE ops between the int8 and int16 parts). fc, ig and c' each get
their own calibrated scale so that no requantization multiplier is an exact power of two: ties
(x.5) then practically never occur, and TFLite's round-half-away and ONNX's round-half-even agree.

Activation scales come from observers (running max |x|, updated while ``observing`` is on);
weights are per-channel symmetric, biases int32 on the accumulator grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tvmse.models.quant import fake_quant, fake_quant_bias, fake_quant_weight, weight_scales

FEATURE_SCALE = 1.0 / 127.0  # model input and every h: [-1, 1] on 255 levels
SIGMOID_SCALE, SIGMOID_ZERO_POINT = 1.0 / 256.0, -128
TANH_SCALE, TANH_ZERO_POINT = 1.0 / 128.0, 0

# Per-layer activations with calibrated scales, in the order of the observer buffer.
CELL_ACTIVATIONS = ("gates", "fc", "ig", "c")


@dataclass(frozen=True)
class TinyLSTMConfig:
    n_bins: int = 257
    hidden: int = 256
    layers: int = 2

    @property
    def n_params(self) -> int:
        total = 0
        width = self.n_bins
        for _ in range(self.layers):
            total += 4 * self.hidden * (width + self.hidden) + 4 * self.hidden
            width = self.hidden
        return total + self.n_bins * self.hidden + self.n_bins


class TinyLSTM(nn.Module):
    """Streaming mask estimator; float, or int8 fake-quant when ``quantized`` is set."""

    def __init__(self, config: TinyLSTMConfig = TinyLSTMConfig()):
        super().__init__()
        self.config = config
        H = config.hidden
        widths = [config.n_bins] + [H] * (config.layers - 1)
        self.cell_weights = nn.ParameterList(
            [nn.Parameter(torch.empty(4 * H, k + H)) for k in widths])
        self.cell_biases = nn.ParameterList([nn.Parameter(torch.zeros(4 * H)) for _ in widths])
        self.out_weight = nn.Parameter(torch.empty(config.n_bins, H))
        self.out_bias = nn.Parameter(torch.zeros(config.n_bins))
        # Running max |activation|: per layer the CELL_ACTIVATIONS, then the output logits.
        self.register_buffer("act_max", torch.zeros(config.layers * len(CELL_ACTIVATIONS) + 1))
        # Sparsity masks by FC name (1 keeps a weight, 0 prunes it), same shapes as the weights.
        self.weight_masks: dict[str, torch.Tensor] = {}
        # Bias masks by FC name, [out]: a pruned unit must lose its gate biases too, or its c and h
        # would not stay zero and a compiler could not delete it.
        self.bias_masks: dict[str, torch.Tensor] = {}
        self.quantized = False
        self.observing = False
        self.observer_momentum = 0.01
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / self.config.hidden ** 0.5
        for w, b in zip(self.cell_weights, self.cell_biases):
            nn.init.uniform_(w, -bound, bound)
            nn.init.zeros_(b)
            b.data[self.config.hidden:2 * self.config.hidden] = 1.0  # forget-gate bias: remember
        nn.init.uniform_(self.out_weight, -bound, bound)
        nn.init.zeros_(self.out_bias)

    # ---- parameters as the integer graph sees them -------------------------------------------
    def masked(self, name: str, w: torch.Tensor) -> torch.Tensor:
        mask = self.weight_masks.get(name)
        return w if mask is None else w * mask

    def masked_bias(self, name: str, b: torch.Tensor) -> torch.Tensor:
        mask = self.bias_masks.get(name)
        return b if mask is None else b * mask

    def effective_weights(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(name, weight, bias) of every FC in graph order, masks applied."""
        out = [(f"lstm{l}", self.masked(f"lstm{l}", w), self.masked_bias(f"lstm{l}", b))
               for l, (w, b) in enumerate(zip(self.cell_weights, self.cell_biases))]
        out.append(("out", self.masked("out", self.out_weight), self.masked_bias("out", self.out_bias)))
        return out

    def step_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of every FC as the step computes with them: masked, and fake-quantized if
        ``quantized``. Computed once per sequence, not per frame: quantizing 1.1 M weights per frame
        made QAT about ten times slower."""
        out = []
        for _, w, b in self.effective_weights():
            if self.quantized:
                w, b = fake_quant_weight(w), fake_quant_bias(b, FEATURE_SCALE * weight_scales(w))
            out.append((w, b))
        return out

    def activation_scale(self, layer: int | None, name: str) -> float:
        """Calibrated scale of a per-layer activation (layer None: the output logits)."""
        index = len(self.act_max) - 1 if layer is None else layer * len(CELL_ACTIVATIONS) + CELL_ACTIVATIONS.index(name)
        value = float(self.act_max[index])
        if value <= 0.0:
            raise RuntimeError(f"activation '{name}' of layer {layer} was never observed: calibrate first")
        # float32 like every scale in the QDQ graph, so torch and the export share the bits
        return float(torch.tensor(value / 127.0, dtype=torch.float32))

    # ---- forward -----------------------------------------------------------------------------
    def _observe(self, layer: int | None, name: str, x: torch.Tensor) -> None:
        if not self.observing:
            return
        index = len(self.act_max) - 1 if layer is None else layer * len(CELL_ACTIVATIONS) + CELL_ACTIVATIONS.index(name)
        m = x.detach().abs().max()
        if self.act_max[index] == 0:
            self.act_max[index] = m
        else:
            self.act_max[index] += self.observer_momentum * (m - self.act_max[index])

    def _q(self, x: torch.Tensor, layer: int | None, name: str) -> torch.Tensor:
        self._observe(layer, name, x)
        return fake_quant(x, self.activation_scale(layer, name)) if self.quantized else x

    @staticmethod
    def _fc(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """FC with weights from :meth:`step_weights` (already fake-quantized when ``quantized``;
        every FC input has scale FEATURE_SCALE, which their bias grid assumes)."""
        return x @ w.t() + b

    def _cell(self, layer: int, x, h, c, w, b):
        gates = self._q(self._fc(torch.cat([x, h], dim=-1), w, b), layer, "gates")
        return self._gates_to_state(layer, gates, c)

    def _gates_to_state(self, layer: int, gates, c):
        """(h', c') from the quantized gate pre-activations and the cell state."""
        H = self.config.hidden
        q = self.quantized
        i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
        i, f, o = (self._fixed(torch.sigmoid(t), SIGMOID_SCALE, SIGMOID_ZERO_POINT, q) for t in (i, f, o))
        g = self._fixed(torch.tanh(g), TANH_SCALE, TANH_ZERO_POINT, q)
        c_new = self._q(self._q(f * c, layer, "fc") + self._q(i * g, layer, "ig"), layer, "c")
        h_new = self._fixed(o * self._fixed(torch.tanh(c_new), TANH_SCALE, TANH_ZERO_POINT, q),
                            FEATURE_SCALE, 0, q)
        return h_new, c_new

    @staticmethod
    def _fixed(x, scale, zero_point, quantized):
        return fake_quant(x, scale, zero_point) if quantized else x

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        """[h0, c0, h1, c1, …] zeros, each [batch, hidden]."""
        device = self.out_weight.device
        return [torch.zeros(batch, self.config.hidden, device=device) for _ in range(2 * self.config.layers)]

    def step(self, frame: torch.Tensor, state: list[torch.Tensor],
             weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One frame: features [B, n_bins] in [-1, 1] → mask [B, n_bins] in [0, 1], new state.

        ``weights`` (from :meth:`step_weights`) lets a caller running many frames prepare them once."""
        x = self._fixed(frame, FEATURE_SCALE, 0, self.quantized)
        new_state = []
        weights = self.step_weights() if weights is None else weights
        for layer in range(self.config.layers):
            w, b = weights[layer]
            h, c = self._cell(layer, x, state[2 * layer], state[2 * layer + 1], w, b)
            new_state += [h, c]
            x = h
        w, b = weights[-1]
        logits = self._q(self._fc(x, w, b), None, "logits")
        mask = self._fixed(torch.sigmoid(logits), SIGMOID_SCALE, SIGMOID_ZERO_POINT, self.quantized)
        return mask, new_state

    def forward_layerwise(self, features: torch.Tensor) -> torch.Tensor:
        """Masks [B, T, n_bins] from zero state, the same ops as :meth:`forward` run layer by layer for training.

        Each layer's input part of the gate FC (and the output FC) is one matmul over all frames instead of
        one per frame, which the backward pass gains most from (one weight-gradient product instead of T);
        only the recurrent part steps frame by frame. Observers see every activation in the same order per
        activation as in :meth:`forward`, so calibration is the same. The gate sums add in another order
        (x·Wx + b, then + h·Wh), so a value on a rounding boundary may land one int8 step away from
        :meth:`forward`, which stays the reference the export matches.
        """
        H, q = self.config.hidden, self.quantized
        batch, frames = features.shape[:2]
        weights = self.step_weights()
        x = self._fixed(features, FEATURE_SCALE, 0, q)
        for layer in range(self.config.layers):
            w, b = weights[layer]
            k = w.shape[1] - H
            inputs = x @ w[:, :k].t() + b  # [B, T, 4H]: every frame's input part at once
            recurrent = w[:, k:].t()
            h, c = self.initial_state(batch)[:2]
            outputs = []
            for t in range(frames):
                gates = self._q(inputs[:, t] + h @ recurrent, layer, "gates")
                h, c = self._gates_to_state(layer, gates, c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
        w, b = weights[-1]
        logits = x @ w.t() + b
        if self.observing:  # the running max follows the frames in order, as in forward()
            logits = torch.stack([self._q(logits[:, t], None, "logits") for t in range(frames)], dim=1)
        elif q:
            logits = fake_quant(logits, self.activation_scale(None, "logits"))
        return self._fixed(torch.sigmoid(logits), SIGMOID_SCALE, SIGMOID_ZERO_POINT, q)

    def forward(self, features: torch.Tensor, state: list[torch.Tensor] | None = None):
        """Run frame by frame over [B, T, n_bins]; returns masks [B, T, n_bins] and the final state."""
        if state is None:
            state = self.initial_state(features.shape[0])
        masks = []
        weights = self.step_weights()
        for t in range(features.shape[1]):
            m, state = self.step(features[:, t], state, weights)
            masks.append(m)
        return torch.stack(masks, dim=1), state
