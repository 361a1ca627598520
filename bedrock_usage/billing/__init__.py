"""What AWS billed for Bedrock, read from a CUR 2.0 export (AWS Data Exports)."""
