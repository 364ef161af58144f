"""SAR: semantic-aware retrieval of creative clips for selling points over the ACKB."""
