"""Hand-written plain-PyTorch reference models, the ones users write or take from torchvision.

torchvision is not installable here, so these reproduce torchvision's definitions
(torchvision.models.resnet50 / resnet152 / vgg16) in plain PyTorch, independently
of netspec:

- ResNet-50 and ResNet-152 in torchvision's form ("ResNet v1.5"): Bottleneck blocks
  1x1 -> 3x3 -> 1x1 with the stride on the 3x3 convolution, convolutions without
  bias, each followed by BatchNorm (eps 1e-5), a 1x1 projection shortcut in the first
  block of each stage; stages of 3, 4, 6, 3 (ResNet-50) or 3, 8, 36, 3 (ResNet-152)
  blocks; global average pooling and a 1000-way fully connected layer.
- VGG-16, configuration D: thirteen 3x3 convolutions with ReLU and five max pools,
  a 7x7 adaptive average pool, three fully connected layers with dropout.

Parameter counts equal torchvision's (see PARAMS); ``python benchmarks/reference_models.py``
builds each model and checks them.

``canonical_weights(model, network)`` turns a model's state_dict into netspec's
canonical weights, so the generated model and ONNX file get the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn

#: torchvision's parameter counts (``sum(p.numel() for p in model.parameters())``).
PARAMS = {"resnet50": 25_557_032, "resnet152": 60_192_808, "vgg16": 138_357_544}


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 inplace: bool = True):
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=inplace)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        if self.inplace:
            out += identity
        else:
            out = out + identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet; ``inplace=False`` makes every ReLU and residual add allocate its output
    (as netspec's generated code does), a variant for telling apart the cost of in-place operations."""

    def __init__(self, layers: tuple[int, int, int, int], num_classes: int = 1000, inplace: bool = True):
        super().__init__()
        self.inplanes = 64
        self.inplace = inplace
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=inplace)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, self.inplace)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, inplace=self.inplace) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGG(nn.Module):
    CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in self.CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def resnet50(inplace: bool = True) -> ResNet:
    return ResNet((3, 4, 6, 3), inplace=inplace)


def resnet152() -> ResNet:
    return ResNet((3, 8, 36, 3))


def vgg16() -> VGG:
    return VGG()


MODELS = {"resnet50": resnet50, "resnet152": resnet152, "vgg16": vgg16}


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_param_counts(device: str = "meta") -> dict[str, int]:
    """Build every model (on the meta device: no memory, no init cost) and check torchvision's counts."""
    counts = {}
    for name, make in MODELS.items():
        with torch.device(device):
            counts[name] = param_count(make())
        if counts[name] != PARAMS[name]:
            raise AssertionError(f"{name}: {counts[name]:,} parameters, torchvision has {PARAMS[name]:,}")
    return counts


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so comparisons test them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
    return model


def canonical_weights(model: nn.Module, network) -> dict:
    """netspec canonical weights (numpy, "<layer>.<param>") holding ``model``'s state_dict.

    The mapping is by position: netspec lists a network's weights in the order of first
    use (conv, batchnorm gamma/beta/moving mean/moving variance, ..., the projection
    shortcut after a block's main branch, dense kernel and bias), the order of
    torchvision's state_dict less ``num_batches_tracked``. Every pair's shape is checked,
    so a mismatch in structure fails here rather than giving wrong numbers.
    """
    from netspec.weights import expected_shapes

    tensors = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    expected = list(expected_shapes(network).items())
    if len(tensors) != len(expected):
        raise AssertionError(f"{len(tensors)} tensors in the model, {len(expected)} canonical weights")
    out = {}
    for (key, value), (name, shape) in zip(tensors, expected):
        if tuple(value.shape) != tuple(shape):
            raise AssertionError(f"{key} {tuple(value.shape)} does not fit {name} {tuple(shape)}")
        out[name] = value.detach().cpu().numpy().copy()
    return out


if __name__ == "__main__":
    for name, count in check_param_counts().items():
        print(f"{name:10} {count:>12,} parameters (torchvision: {PARAMS[name]:,})")
