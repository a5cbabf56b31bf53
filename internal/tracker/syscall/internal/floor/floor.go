// Package floor attaches an empty program to the sys_enter tracepoint: the
// least any syscall tracer costs per call on this kernel. Only the syscall
// tracker's benchmark uses it.
package floor

import (
	"errors"

	"github.com/cilium/ebpf/link"
)

// Attached is the empty program, attached.
type Attached struct {
	objs floorObjects
	link link.Link
}

// Attach loads the empty program and attaches it to sys_enter.
func Attach() (*Attached, error) {
	a := &Attached{}
	if err := loadFloorObjects(&a.objs, nil); err != nil {
		return nil, err
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: a.objs.Nothing})
	if err != nil {
		a.objs.Close()
		return nil, err
	}
	a.link = l
	return a, nil
}

// Close detaches and frees the program.
func (a *Attached) Close() error {
	return errors.Join(a.link.Close(), a.objs.Close())
}
