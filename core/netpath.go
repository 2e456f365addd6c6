package core

import (
	"path/filepath"
	"strings"
)

// isNetworkPath reports whether path names a network share: a UNC path
// (\\server\share or //server/share) on any system, or a folder whose file
// system is a network one (NFS, SMB/CIFS, ...; see netpath_*.go).
func isNetworkPath(path string) (bool, string) {
	if strings.HasPrefix(path, `\\`) || strings.HasPrefix(path, `//`) {
		if strings.HasPrefix(path, `\\?\`) && !strings.HasPrefix(strings.ToUpper(path), `\\?\UNC\`) {
			return false, ""
		}
		return true, "UNC path"
	}
	dir := filepath.Dir(path)
	for {
		if net, kind := isNetworkFS(dir); net {
			return true, kind
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false, ""
		}
		if existsDir(dir) {
			// The nearest existing folder decides; its parents hold no other mount.
			return false, ""
		}
		dir = parent
	}
}
