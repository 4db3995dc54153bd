//go:build !unix

package app

func restrictUmask() {}
