//go:build !linux

package main

import "errors"

// loopbackUp is Linux's alone: elsewhere, privateNetwork finds no unshare,
// and TestQuickstart runs on the machine's loopback.
func loopbackUp() error { return errors.New("network namespaces are Linux's") }
