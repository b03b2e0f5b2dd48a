// Our stand-in for monis.app/mlog (see mlog.go): the module proxy our machines
// reach does not serve it, and the driver's binary imports it.
module monis.app/mlog

go 1.24

require k8s.io/klog/v2 v2.80.1

require github.com/go-logr/logr v1.2.0 // indirect
