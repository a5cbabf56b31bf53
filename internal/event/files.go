package event

// File types of files.io and files.open events (the "file_type" field).
const (
	FileRegular = "regular"
	FileSocket  = "socket"
	FilePipe    = "pipe"
	FileOther   = "other"
)

// FilesIO is the payload of a files.io event: what one process read from
// and wrote to one file during one report interval. Each interval the
// files tracker emits a top list of these, largest byte count first.
type FilesIO struct {
	File       string // path (see docs/files.md for how it is built)
	Inode      uint64
	Dev        uint64 // device number as stat(2) reports it
	FileType   string // FileRegular, FileSocket, FilePipe or FileOther
	Reads      uint64 // calls that returned >= 0
	Writes     uint64
	ReadBytes  uint64
	WriteBytes uint64
}

// WriteFields implements Payload.
func (p *FilesIO) WriteFields(w FieldWriter) {
	w.String("file", p.File)
	w.Uint("inode", p.Inode)
	w.Uint("dev", p.Dev)
	w.String("file_type", p.FileType)
	w.Uint("reads", p.Reads)
	w.Uint("writes", p.Writes)
	w.Uint("read_bytes", p.ReadBytes)
	w.Uint("write_bytes", p.WriteBytes)
}

// FilesOpen is the payload of a files.open event: one open, openat,
// openat2 or creat call and its result.
type FilesOpen struct {
	Path  string // as the caller passed it (may be relative to Dfd)
	Dfd   int32  // directory fd of a relative path; -100 is the working directory
	Flags uint64 // O_* flags
	// FlagsText spells Flags out, e.g. "O_WRONLY|O_CREAT|O_TRUNC".
	FlagsText string
	Mode      uint32 // permission bits for a created file
	Result    int64  // the new fd, or -errno
	// Of the opened file, when Result >= 0.
	Inode    uint64
	Dev      uint64
	FileType string
}

// WriteFields implements Payload.
func (p *FilesOpen) WriteFields(w FieldWriter) {
	w.String("path", p.Path)
	w.Int("dfd", int64(p.Dfd))
	w.Uint("flags", p.Flags)
	w.String("flags_text", p.FlagsText)
	w.Uint("mode", uint64(p.Mode))
	w.Int("result", p.Result)
	if p.Result >= 0 {
		w.Uint("inode", p.Inode)
		w.Uint("dev", p.Dev)
		w.String("file_type", p.FileType)
	}
}
