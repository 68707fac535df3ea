"""Vendored third-party reference files (Salesforce WSDLs, Pipedrive OpenAPI): see README.md here."""
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent
SALESFORCE_WSDL_DIR = REFERENCE_DIR / "salesforce-wsdl"
PIPEDRIVE_OPENAPI_DIR = REFERENCE_DIR / "pipedrive-openapi"
