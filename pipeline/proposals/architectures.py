"""The torchvision Faster R-CNN architectures the person detector builds, by name: free of
torch, so that ``stad detect``'s parser can list them."""

ARCHITECTURES = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
)
