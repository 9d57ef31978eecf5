"""Operations on a node home: the consistency check and the embedded profile's backup."""
