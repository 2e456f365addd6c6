//go:build !linux && !windows

package core

import "os"

func isNetworkFS(string) (bool, string) { return false, "" }

func existsDir(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
