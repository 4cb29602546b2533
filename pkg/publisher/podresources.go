package publisher

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// legacyInUse asks the kubelet which devices its device manager has given
// to containers under the named extended resources: the devices pods still
// hold through the classic device-plugin API. A pool moved from the shim
// (or the classic plugin) to DRA keeps those out of the slices until the
// pods are gone, so that the scheduler never hands them out twice.
func legacyInUse(ctx context.Context, socket string, resources map[string]bool) (map[string]bool, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("pod resources %s: %w", socket, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("pod resources %s: %w", socket, err)
	}
	inUse := map[string]bool{}
	for _, pod := range resp.GetPodResources() {
		for _, c := range pod.GetContainers() {
			for _, d := range c.GetDevices() {
				if resources[d.GetResourceName()] {
					for _, id := range d.GetDeviceIds() {
						inUse[id] = true
					}
				}
			}
		}
	}
	return inUse, nil
}
