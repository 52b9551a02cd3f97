"""Command shapes and error facts of the non-SQL stores: MongoDB and DynamoDB."""
