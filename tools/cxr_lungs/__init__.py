"""The lung-field detector recipe (models/cxr-lungs): one box per lung field on a chest film."""
