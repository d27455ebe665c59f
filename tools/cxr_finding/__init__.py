"""The chest finding recipe (models/cxr-finding): normal vs pneumonia with a class-activation heatmap."""
