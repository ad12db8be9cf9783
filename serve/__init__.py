"""serve: stdin/stdout batch classifier."""
