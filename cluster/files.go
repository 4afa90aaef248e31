package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// fileStore keeps the on-disk copies of the replicated files: one file per name, mode
// 0600, in a directory of mode 0700. The copies are derived from the state machine and
// rewritten from it (write, delete, reconcile); nothing reads them back into it.
type fileStore struct {
	dir string
}

func newFileStore(dir string) (*fileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating files directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("securing files directory: %w", err)
	}
	return &fileStore{dir: dir}, nil
}

func (s *fileStore) path(name string) string { return filepath.Join(s.dir, name) }

// write replaces the file atomically (a temporary file renamed over it), so a reader
// sees the old content or the new, never a part.
func (s *fileStore) write(name string, data []byte) error {
	f, err := os.CreateTemp(s.dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("writing file %s: %w", name, err)
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing file %s: %w", name, err)
	}
	return nil
}

func (s *fileStore) remove(name string) error {
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting file %s: %w", name, err)
	}
	return nil
}

// reconcile makes the directory hold exactly files: it writes those whose content
// differs and deletes everything else (including temporary files left by a crash).
func (s *fileStore) reconcile(files map[string]storedFile) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("listing files directory: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			if err := os.RemoveAll(s.path(e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("deleting file %s: %w", e.Name(), err))
			}
		}
	}
	for name, f := range files {
		if old, err := os.ReadFile(s.path(name)); err == nil && bytes.Equal(old, f.Data) {
			continue
		}
		if err := s.write(name, f.Data); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
