package adapters

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/tier"
)

// GRPCStatus maps a cache error to the status a gRPC client acts on:
// rejected content is INVALID_ARGUMENT (never retried), a full store is
// RESOURCE_EXHAUSTED (stop writing, keep building), a miss is NOT_FOUND.
// An error that already is a gRPC status passes through. ok is false for
// anything else: only the server can see why it failed, so the adapter logs
// it and answers INTERNAL.
func GRPCStatus(err error) (st error, ok bool) {
	switch {
	case errors.Is(err, tier.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error()), true
	case errors.Is(err, tier.ErrFull):
		return status.Error(codes.ResourceExhausted, err.Error()), true
	case errors.Is(err, tier.ErrNotFound):
		return status.Error(codes.NotFound, err.Error()), true
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error()), true
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error()), true
	}
	if s, isStatus := status.FromError(err); isStatus && s.Code() != codes.Unknown {
		return err, true
	}
	return nil, false
}
