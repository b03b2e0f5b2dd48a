package suite

// The test's kubelet: what kubelet does for a pod's inline CSI volume, and
// nothing more. It reads the pod and the CSIDriver object from the API
// server, requests the pod-bound service-account tokens the CSIDriver's
// tokenRequests name (the TokenRequest API, via `kubectl create token`),
// and calls the driver's NodePublishVolume / NodeUnpublishVolume over its
// socket with the volume context kubelet sends.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// DriverName is the Secrets Store CSI Driver's name.
const DriverName = "secrets-store.csi.k8s.io"

// Kubelet plays kubelet for one node.
type Kubelet struct {
	Root    string // plays /var/lib/kubelet
	cluster *Cluster
	node    csi.NodeClient
	conn    *grpc.ClientConn
}

// Pod is what kubelet knows of a pod with one CSI volume of our driver.
type Pod struct {
	Namespace, Name, UID, ServiceAccount string
	Volume                               string
	Attributes                           map[string]string
	ReadOnly                             bool
}

// CSIDriverSpec is the part of the CSIDriver object kubelet acts on.
type CSIDriverSpec struct {
	PodInfoOnMount    bool `json:"podInfoOnMount"`
	RequiresRepublish bool `json:"requiresRepublish"`
	TokenRequests     []struct {
		Audience string `json:"audience"`
	} `json:"tokenRequests"`
}

// NewKubelet connects to the driver's socket.
func NewKubelet(root, driverSocket string, cluster *Cluster) (*Kubelet, error) {
	conn, err := grpc.Dial("unix:"+driverSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dialling the driver at %s: %w", driverSocket, err)
	}
	return &Kubelet{Root: root, cluster: cluster, node: csi.NewNodeClient(conn), conn: conn}, nil
}

// Close closes the connection to the driver.
func (k *Kubelet) Close() { k.conn.Close() }

// GetPod reads a pod from the API server and finds its volume of our driver.
func (k *Kubelet) GetPod(namespace, name string) (*Pod, error) {
	out, err := k.cluster.Kubectl("get", "pod", "-n", namespace, name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var obj struct {
		Metadata struct{ UID string }
		Spec     struct {
			ServiceAccountName string
			Volumes            []struct {
				Name string
				CSI  *struct {
					Driver           string
					ReadOnly         bool
					VolumeAttributes map[string]string
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	for _, v := range obj.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == DriverName {
			return &Pod{Namespace: namespace, Name: name, UID: obj.Metadata.UID,
				ServiceAccount: obj.Spec.ServiceAccountName, Volume: v.Name,
				Attributes: v.CSI.VolumeAttributes, ReadOnly: v.CSI.ReadOnly}, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s has no %s volume", namespace, name, DriverName)
}

// CSIDriver reads the driver's CSIDriver object.
func (k *Kubelet) CSIDriver() (*CSIDriverSpec, error) {
	out, err := k.cluster.Kubectl("get", "csidriver", DriverName, "-o", "jsonpath={.spec}")
	if err != nil {
		return nil, err
	}
	spec := &CSIDriverSpec{}
	return spec, json.Unmarshal([]byte(out), spec)
}

// TargetPath is kubelet's mount path of the pod's volume.
func (k *Kubelet) TargetPath(pod *Pod) string {
	return filepath.Join(k.Root, "pods", pod.UID, "volumes", "kubernetes.io~csi", pod.Volume, "mount")
}

// TokenRequest is the answer of the TokenRequest API.
type TokenRequest struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp"`
}

// PodToken requests a token for the pod's service account, bound to the
// pod, as kubelet does for each of the CSIDriver's tokenRequests.
func (k *Kubelet) PodToken(pod *Pod, audience string) (TokenRequest, error) {
	out, err := k.cluster.Kubectl("create", "token", pod.ServiceAccount, "-n", pod.Namespace,
		"--audience", audience, "--bound-object-kind", "Pod", "--bound-object-name", pod.Name,
		"--bound-object-uid", pod.UID, "-o", "json")
	if err != nil {
		return TokenRequest{}, err
	}
	var tr struct{ Status TokenRequest }
	if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.Status.Token == "" {
		return TokenRequest{}, fmt.Errorf("TokenRequest for %s/%s gave no token (%v)", pod.Namespace, pod.ServiceAccount, err)
	}
	return tr.Status, nil
}

// VolumeContext is what kubelet sends: the volume's attributes, the pod's
// identity when podInfoOnMount, and the tokens of tokenRequests. It also
// returns the tokens, so the test can look for them in logs.
func (k *Kubelet) VolumeContext(pod *Pod, driver *CSIDriverSpec) (map[string]string, []string, error) {
	ctx := map[string]string{}
	for key, v := range pod.Attributes {
		ctx[key] = v
	}
	if driver.PodInfoOnMount {
		ctx["csi.storage.k8s.io/pod.name"] = pod.Name
		ctx["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
		ctx["csi.storage.k8s.io/pod.uid"] = pod.UID
		ctx["csi.storage.k8s.io/serviceAccount.name"] = pod.ServiceAccount
		ctx["csi.storage.k8s.io/ephemeral"] = "true"
	}
	var issued []string
	if len(driver.TokenRequests) > 0 {
		tokens := map[string]TokenRequest{}
		for _, tr := range driver.TokenRequests {
			token, err := k.PodToken(pod, tr.Audience)
			if err != nil {
				return nil, nil, err
			}
			tokens[tr.Audience] = token
			issued = append(issued, token.Token)
		}
		data, err := json.Marshal(tokens)
		if err != nil {
			return nil, nil, err
		}
		ctx["csi.storage.k8s.io/serviceAccount.tokens"] = string(data)
	}
	return ctx, issued, nil
}

// Publish calls NodePublishVolume for the pod's volume as kubelet does
// (also for a republish) and returns the tokens it sent.
func (k *Kubelet) Publish(pod *Pod) ([]string, error) {
	driver, err := k.CSIDriver()
	if err != nil {
		return nil, err
	}
	volumeContext, tokens, err := k.VolumeContext(pod, driver)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = k.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   k.volumeID(pod),
		TargetPath: k.TargetPath(pod),
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly:      pod.ReadOnly,
		VolumeContext: volumeContext,
	})
	return tokens, err
}

// Unpublish calls NodeUnpublishVolume for the pod's volume.
func (k *Kubelet) Unpublish(pod *Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := k.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{
		VolumeId: k.volumeID(pod), TargetPath: k.TargetPath(pod),
	})
	return err
}

// volumeID is kubelet's handle for an inline ephemeral volume: "csi-" and
// a hash of the pod UID and volume name.
func (k *Kubelet) volumeID(pod *Pod) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(pod.UID+"/"+pod.Volume)))
}
