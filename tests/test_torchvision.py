import torch

from prunebench.training._torchvision import import_torchvision


def test_torchvision_models_and_datasets_import():
    torchvision = import_torchvision()
    model = torchvision.models.resnet18(num_classes=10).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    from torchvision import datasets, transforms

    assert issubclass(datasets.MNIST, datasets.VisionDataset)
    image = transforms.ToTensor()(transforms.ToPILImage()(torch.zeros(1, 4, 4)))
    assert image.shape == (1, 4, 4)
