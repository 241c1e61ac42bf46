//go:build wasip1

package dumpflow

import "unsafe"

//go:wasmimport dumpflow read_input
func readInput(ptr unsafe.Pointer, n int32) int32

//go:wasmimport dumpflow write_output
func writeOutput(ptr unsafe.Pointer, n int32) int32

//go:wasmimport dumpflow set_error
func setError(ptr unsafe.Pointer, n int32) int32

//go:wasmexport dumpflow_abi_version_1
func abiVersion1() {}

//go:wasmexport dumpflow_on_record
func dumpflowOnRecord(size int32) int32 {
	if err := onRecord(size, hostRead, hostWrite); err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "error with no message"
		}
		setError(unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
		return 1
	}
	return 0
}

func hostRead(b []byte) int32 { return readInput(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b))) }

func hostWrite(b []byte) int32 {
	return writeOutput(unsafe.Pointer(unsafe.SliceData(b)), int32(len(b)))
}
