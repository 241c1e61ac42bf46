package main

import (
	"context"
	"errors"
)

func cmdTable(ctx context.Context, args []string) error {
	return errors.New("not built yet")
}
