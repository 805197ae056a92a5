"""The admin: inline variants validated by the services, run buttons and actions, the results page."""

from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings

from experiments import services
from experiments.hooks import router
from experiments.models import Experiment
from inference.predict.contract import PredictRequest
from tests.experiments.helpers import arms, deployment

CHANGELIST = "/admin/experiments/experiment/"


def form_data(variants, **fields) -> dict:
    data = {"name": "Churn v2", "description": "", "endpoint": "churn", "outcome": "accuracy",
            "higher_is_better": "on", "duration_hours": "", "ends_at_0": "", "ends_at_1": "",
            "variants-TOTAL_FORMS": str(len(variants)), "variants-INITIAL_FORMS": "0",
            "variants-MIN_NUM_FORMS": "0", "variants-MAX_NUM_FORMS": "1000", **fields}
    for index, (name, endpoint, weight, shadow) in enumerate(variants):
        data.update({f"variants-{index}-name": name, f"variants-{index}-deployment": endpoint,
                     f"variants-{index}-weight": str(weight)})
        if shadow:
            data[f"variants-{index}-shadow"] = "on"
    return data


class ExperimentAdminTests(TestCase):
    def setUp(self):
        self.staff = get_user_model().objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)
        self.client.force_login(self.staff)
        for endpoint in ("churn-a", "churn-b", "churn-c"):
            deployment(endpoint)

    def test_adding_with_invalid_weights_shows_the_problem_and_saves_nothing(self):
        response = self.client.post(f"{CHANGELIST}add/", form_data([("a", "churn-a", 60, False),
                                                                     ("b", "churn-b", 50, False)]))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "weights must sum to 100 (percent); [60, 50] sums to 110")
        self.assertEqual(Experiment.objects.count(), 0)
        negative = self.client.post(f"{CHANGELIST}add/", form_data([("a", "churn-a", -10, False),
                                                                     ("b", "churn-b", 110, False)]))
        self.assertContains(negative, "variants[0].weight: must not be negative")
        shadow = self.client.post(f"{CHANGELIST}add/", form_data([("a", "churn-a", 100, False),
                                                                   ("s", "churn-c", 5, True)]))
        self.assertContains(shadow, "give it weight 0")
        self.assertEqual(Experiment.objects.count(), 0)

    def test_adding_creates_the_experiment_with_its_variants_and_shadow(self):
        response = self.client.post(f"{CHANGELIST}add/", form_data([("a", "churn-a", 30, False),
                                                                     ("b", "churn-b", 70, False),
                                                                     ("s", "churn-c", 0, True)]))
        self.assertEqual(response.status_code, 302, response.content.decode()[-3000:])
        experiment = Experiment.objects.get()
        self.assertEqual(experiment.created_by, self.staff)
        self.assertEqual([(v.name, v.weight, v.shadow) for v in experiment.variants.all()],
                         [("a", 30.0, False), ("b", 70.0, False), ("s", 0.0, True)])

    def test_changing_the_variants_of_a_draft_replaces_them_through_the_service(self):
        experiment = services.experiment_create(name="Churn v2", endpoint="churn",
                                                variants=arms(("a", "churn-a", 50), ("b", "churn-b", 50)))
        a, b = experiment.variants.all()
        data = form_data([("a", "churn-a", 20, False), ("b", "churn-b", 80, False)], **{
            "variants-INITIAL_FORMS": "2", "variants-0-id": str(a.pk), "variants-1-id": str(b.pk),
            "variants-0-experiment": str(experiment.pk), "variants-1-experiment": str(experiment.pk),
            "name": "Churn v2 (ramp)"})
        response = self.client.post(f"{CHANGELIST}{experiment.pk}/change/", data)
        self.assertEqual(response.status_code, 302, response.content.decode()[-3000:])
        experiment.refresh_from_db()
        self.assertEqual(experiment.name, "Churn v2 (ramp)")
        self.assertEqual([(v.name, v.weight) for v in experiment.variants.all()], [("a", 20.0), ("b", 80.0)])

    def test_run_buttons_and_actions_go_through_the_services(self):
        experiment = services.experiment_create(name="Churn v2", endpoint="churn",
                                                variants=arms(("a", "churn-a", 50), ("b", "churn-b", 50)))
        change = self.client.get(f"{CHANGELIST}{experiment.pk}/change/")
        self.assertContains(change, 'form="transition-start"')
        self.client.post(f"{CHANGELIST}{experiment.pk}/transition/start/")
        self.assertEqual(Experiment.objects.get().status, "running")
        self.client.post(CHANGELIST, {"action": "pause", "_selected_action": [experiment.pk]})
        self.assertEqual(Experiment.objects.get().status, "paused")
        refused = self.client.post(CHANGELIST, {"action": "stop", "_selected_action": [experiment.pk]}, follow=True)
        self.assertContains(refused, "No deployment is named")
        self.assertEqual(Experiment.objects.get().status, "paused")
        deployment("churn")
        self.client.post(CHANGELIST, {"action": "stop", "_selected_action": [experiment.pk]})
        self.assertEqual(Experiment.objects.get().status, "stopped")
        readonly = self.client.get(f"{CHANGELIST}{experiment.pk}/change/")
        self.assertNotContains(readonly, 'name="_save"')
        self.assertNotContains(readonly, 'form="transition-start"')

    def test_the_promote_action_needs_a_significant_winner(self):
        experiment = services.experiment_create(name="Churn v2", endpoint="churn",
                                                variants=arms(("a", "churn-a", 50), ("b", "churn-b", 50)))
        services.experiment_start(experiment=experiment)
        response = self.client.post(CHANGELIST, {"action": "promote", "_selected_action": [experiment.pk]},
                                    follow=True)
        self.assertContains(response, "No variant is significantly better")
        self.assertEqual(Experiment.objects.get().status, "running")

    def test_editing_a_running_experiment_keeps_endpoint_and_outcome_fixed(self):
        experiment = services.experiment_create(name="Churn v2", endpoint="churn",
                                                variants=arms(("a", "churn-a", 50), ("b", "churn-b", 50)))
        services.experiment_start(experiment=experiment)
        page = self.client.get(f"{CHANGELIST}{experiment.pk}/change/")
        self.assertNotContains(page, 'name="endpoint"')
        self.assertContains(page, 'name="name"')

    def test_the_results_page_shows_the_figures_and_embeds_the_chart_data(self):
        experiment = services.experiment_create(name="Churn v2", endpoint="churn",
                                                variants=arms(("a", "churn-a", 50), ("b", "churn-b", 50)))
        services.experiment_start(experiment=experiment)
        request = PredictRequest(endpoint="churn", inputs=[[1, 2, 3, 4]], params={}, request_id="r1",
                                         subject_id="alice")
        routing = router.route(request)
        router.record(routing, request, {"request_id": "r1", "predictions": [1], "cached": False}, 0.003)
        services.feedback_record(request_id="r1", label=1)
        page = self.client.get(f"{CHANGELIST}{experiment.pk}/results/")
        self.assertEqual(page.status_code, 200)
        for fragment in ('id="chart-traffic"', 'id="chart-latency"', 'id="chart-outcome"', 'id="experiment-results"',
                         "experiments/vendor/chart.umd.js", "Verdict:", "not enough data yet"):
            self.assertContains(page, fragment)
        self.assertContains(page, "100.00% [", msg_prefix="the variant's accuracy with its interval")

    @override_settings(EXPERIMENT_PROMOTE_WAIT_S=0.1)
    def test_a_promote_waiting_for_the_model_server_says_so(self):
        experiment = services.experiment_create(name="Churn v2", endpoint="churn",
                                                variants=arms(("a", "churn-a", 50), ("b", "churn-b", 50)))
        services.experiment_start(experiment=experiment)
        self.client.post(f"{CHANGELIST}{experiment.pk}/transition/promote/", {"variant": "b"})
        messages = [str(m) for m in self.client.get(CHANGELIST).context["messages"]]
        self.assertTrue(any("still loading" in m for m in messages), messages)
        self.assertEqual(Experiment.objects.get().promoting_to, "b")

    def test_non_staff_cannot_reach_the_results_page(self):
        experiment = services.experiment_create(name="x", endpoint="churn", variants=arms(("a", "churn-a", 100)))
        self.client.logout()
        response = self.client.get(f"{CHANGELIST}{experiment.pk}/results/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])
