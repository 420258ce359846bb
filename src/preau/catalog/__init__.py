"""Catalog stage: local file catalog, CKAN publishing, harvest/federation, Solr-protocol dev index."""
