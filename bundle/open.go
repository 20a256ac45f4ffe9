package bundle

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// MaxSigBytes bounds a detached signature file: one manifest entry and a
// few signatures.
const MaxSigBytes = 1 << 20

// openRegular opens name for reading only if it is a regular file. A path
// that whoever can write the directory points at a FIFO or a device (a
// symlink to /dev/zero) would otherwise hang a load, or fill memory, where
// it must be refused saying why. O_NONBLOCK keeps the open itself from
// waiting on a FIFO; it changes nothing for a regular file.
func openRegular(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%v)", name, fi.Mode().Type())
	}
	return f, nil
}

// ReadRegular reads the regular file name, refusing one of more than max
// bytes, or one that is not a regular file (see openRegular). Whatever
// reads a file it then verifies, such as a signed lock, reads it so.
func ReadRegular(name string, max int64) ([]byte, error) {
	f, err := openRegular(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	return data, nil
}
