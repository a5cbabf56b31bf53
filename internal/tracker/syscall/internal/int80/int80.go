//go:build amd64

// Package int80 makes a system call through the 32-bit (ia32) entry of an
// x86-64 kernel from a 64-bit process, as 32-bit programs do. Tests use it
// to check that such calls are told apart from 64-bit ones: their numbers
// come from another table (getppid is 64 there, 110 for x86-64).
package int80

// Getppid calls i386 getppid (number 64) through "int $0x80" and returns
// its result.
func Getppid() int32
