"""The kopf operator that turns TransferSearch resources into trainer Jobs."""
